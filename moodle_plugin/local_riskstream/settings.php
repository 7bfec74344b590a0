<?php
// This file is part of the riskstream Moodle plugin.
//
// This program is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.


/**
 * Admin settings for local_riskstream.
 *
 * @package    local_riskstream
 * @copyright  2026 riskstream
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */

defined('MOODLE_INTERNAL') || die();

if ($hassiteconfig) {
    $settings = new admin_settingpage('local_riskstream', get_string('pluginname', 'local_riskstream'));
    $settings->add(new admin_setting_configcheckbox('local_riskstream/notifyteachers',
        get_string('notifyteachers', 'local_riskstream'),
        get_string('notifyteachers_desc', 'local_riskstream'), 1));
    $settings->add(new admin_setting_configtext('local_riskstream/showdays',
        get_string('showdays', 'local_riskstream'),
        get_string('showdays_desc', 'local_riskstream'), 28, PARAM_INT));
    $settings->add(new admin_setting_configtext('local_riskstream/digestabove',
        get_string('digestabove', 'local_riskstream'),
        get_string('digestabove_desc', 'local_riskstream'), 10, PARAM_INT));
    $ADMIN->add('localplugins', $settings);
}
