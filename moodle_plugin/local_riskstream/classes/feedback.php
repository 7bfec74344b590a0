<?php
// This file is part of the riskstream Moodle plugin.
//
// This program is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.


namespace local_riskstream;

use context_course;
use moodle_url;

/**
 * Teachers' feedback on an alert: acknowledged, contacted the student, or not useful.
 *
 * Rows only grow (ids increase), so the connector reads them with an id cursor like the log;
 * the latest row per alert and teacher is the current answer.
 *
 * @package    local_riskstream
 * @copyright  2026 riskstream
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class feedback {
    /** Table of feedback rows. */
    const TABLE = 'local_riskstream_feedback';
    /** The answers a teacher can give. */
    const ACTIONS = ['acknowledged', 'contacted', 'notuseful'];

    /**
     * Record one teacher's answer about one alert; the teacher must see the course's alerts.
     *
     * @param string $alertid
     * @param string $action one of ACTIONS
     * @param int $teacherid
     * @return \stdClass the stored row
     */
    public static function record(string $alertid, string $action, int $teacherid): \stdClass {
        global $DB;
        if (!in_array($action, self::ACTIONS, true)) {
            throw new \invalid_parameter_exception('action must be one of ' . implode(', ', self::ACTIONS));
        }
        $alert = $DB->get_record(alerts::TABLE, ['alertid' => $alertid], '*', MUST_EXIST);
        require_capability('local/riskstream:viewalerts', context_course::instance($alert->courseid), $teacherid);
        $row = (object)[
            'alertid' => $alert->alertid,
            'courseid' => $alert->courseid,
            'userid' => $alert->userid,
            'teacherid' => $teacherid,
            'action' => $action,
            'timecreated' => time(),
        ];
        $row->id = $DB->insert_record(self::TABLE, $row);
        return $row;
    }

    /**
     * The latest answer per alert in a course (for the course page).
     *
     * @param int $courseid
     * @return array alertid => row
     */
    public static function latest_in_course(int $courseid): array {
        global $DB;
        $rows = $DB->get_records(self::TABLE, ['courseid' => $courseid], 'id ASC');
        $latest = [];
        foreach ($rows as $row) {
            $latest[$row->alertid] = $row;
        }
        return $latest;
    }

    /**
     * How teachers judged a course's alerts: alerts answered, and the share not marked
     * "not useful" (the latest answer per alert counts).
     *
     * @param int $courseid
     * @return array ['alerts' => int, 'answered' => int, 'useful' => int, 'share' => ?float]
     */
    public static function usefulness(int $courseid): array {
        global $DB;
        $alerts = $DB->count_records(alerts::TABLE, ['courseid' => $courseid]);
        $latest = self::latest_in_course($courseid);
        $useful = count(array_filter($latest, fn($f) => $f->action !== 'notuseful'));
        $answered = count($latest);
        return ['alerts' => $alerts, 'answered' => $answered, 'useful' => $useful,
            'share' => $answered ? $useful / $answered : null];
    }

    /**
     * Link a teacher follows to give an answer (a confirmation page; it posts with sesskey).
     *
     * @param string $alertid
     * @param string $action
     * @return moodle_url
     */
    public static function url(string $alertid, string $action): moodle_url {
        return new moodle_url('/local/riskstream/feedback.php', ['alert' => $alertid, 'action' => $action]);
    }
}
